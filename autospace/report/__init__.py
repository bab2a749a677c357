"""What a run shows: report.md (`markdown`), report.html (`html`), pictures of cells, spaces and
networks (`show`, `show_cell`), the space table and fitness plot of an evolve run (`space`)."""

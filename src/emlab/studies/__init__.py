"""Studies: grids of conditions (axes x levels x seeds) expanded into an ordinary experiment."""

"""The command line, one module per area: each parses its arguments and calls the package (the
top layer: it may import everything, nothing imports it but `dermalens.cli`)."""

"""The `tradegraph` command line (Typer + Rich). One module per command group; `main` wires them."""

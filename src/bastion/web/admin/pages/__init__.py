"""One module per group of admin pages; each exposes `routes(ui)`."""

"""The admin web UI: server-rendered pages (Jinja2) over Bastion's own REST API, called in process."""

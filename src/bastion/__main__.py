"""`python -m bastion` is the `bastion` command."""

from bastion.cli.main import cli

if __name__ == "__main__":
    cli()

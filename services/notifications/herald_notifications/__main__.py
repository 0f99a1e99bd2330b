"""Run the notifications service: ``python -m herald_notifications``."""

from herald_notifications.cli import main

if __name__ == "__main__":
    main(["serve"])

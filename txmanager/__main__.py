"""``python -m corrtrace.txmanager serve|init|status|rollback|commit``."""

from corrtrace.txmanager.cli import txmanager

if __name__ == "__main__":  # pragma: no cover
    txmanager()

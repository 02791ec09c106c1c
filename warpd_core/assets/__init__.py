"""Files that ship with warpd_core: the trained PushT model bundle."""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent
SHIPPED_PUSHT_MODEL = ASSETS / "pusht_warpd"

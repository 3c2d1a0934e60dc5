"""Which NAS sent a guest to the portal, and how to hand the credentials back to it (RADIUS mode)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from rlm_hotspot.db import uam as q
from rlm_hotspot.services.errors import NotFound, ServiceError


def nas_uam(db: Session, nas_name: str) -> q.NasUam:
    """The NAS named in a redirect (CoovaChilli nasid, MikroTik identity); NotFound for a stranger."""
    row = q.nas_uam(db, nas_name)
    if row is None:
        raise NotFound(f"no NAS named {nas_name!r}")
    return row


def set_nas_uam(db: Session, nas_name: str, *, uam_secret: str | None, uam_login_url: str | None) -> None:
    """Set (or clear) a NAS's uamsecret and login URL."""
    if uam_login_url is not None and not uam_login_url.startswith(("http://", "https://")):
        raise ServiceError("the NAS login URL must start with http:// or https://")
    if uam_secret is not None and not uam_secret:
        raise ServiceError("an empty uamsecret: leave it unset instead")
    if not q.set_nas_uam(db, nas_name, uam_secret, uam_login_url):
        raise NotFound(f"no NAS named {nas_name!r}")

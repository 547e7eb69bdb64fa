"""`POST /api/token`: a bearer token for the logged-in user; `POST /api/token/revoke`: end them all."""

from __future__ import annotations

from fastapi import APIRouter, Request

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_web.auth import Authenticator
from heygem_web.deps import OwnerDep

router = APIRouter(tags=["login"])


@router.post("/api/token")
def token(request: Request, owner: OwnerDep) -> dict[str, object]:
    """A bearer token for the logged-in user (log in with HTTP Basic to get it), valid for
    `expires_in` seconds unless revoked."""
    authenticator = _authenticator(request, owner)
    return {"token": authenticator.token_for(owner), "user": owner,
            "expires_in": int(authenticator.tokens.ttl_s)}


@router.post("/api/token/revoke")
def revoke(request: Request, owner: OwnerDep) -> dict[str, object]:
    """End every bearer token of the logged-in user, the one this request used included."""
    _authenticator(request, owner).revoke(owner)
    return {"user": owner, "revoked": True}


def _authenticator(request: Request, owner: str | None) -> Authenticator:
    if owner is None:
        raise HeyGemError(ErrorCode.BATCH_INVALID, "login is not turned on (HEYGEM_AUTH)")
    return request.app.state.authenticator

"""`POST /api/token`: a bearer token for the logged-in user."""

from __future__ import annotations

from fastapi import APIRouter, Request

from heygem_core.errors import ErrorCode, HeyGemError
from heygem_web.deps import OwnerDep

router = APIRouter(tags=["login"])


@router.post("/api/token")
def token(request: Request, owner: OwnerDep) -> dict[str, str]:
    """A bearer token for the logged-in user (log in with HTTP Basic to get it)."""
    if owner is None:
        raise HeyGemError(ErrorCode.BATCH_INVALID, "login is not turned on (HEYGEM_AUTH)")
    return {"token": request.app.state.authenticator.token_for(owner), "user": owner}

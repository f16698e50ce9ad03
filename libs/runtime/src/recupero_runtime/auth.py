"""Tenant API keys: `Authorization: Bearer <key>` resolves to exactly one tenant or a 401."""

import hashlib
import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return "rk_" + secrets.token_urlsafe(32)


def authenticated_tenant(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing API key: send 'Authorization: Bearer <tenant API key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    tenant: str | None = request.app.state.service.settings.api_keys.get(hash_api_key(key.strip()))
    if tenant is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="unknown API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


TenantId = Annotated[str, Depends(authenticated_tenant)]

"""The coding frame: the themes reviewers tag with; editors add, revise and retire them."""

from __future__ import annotations

import msgspec
from litestar import delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from api.problems import STAFF_PROBLEMS
from api.services import Services
from api.staff.review import EDITORS, READERS, Recorded, Staff
from domain.consultations.consultation import Theme
from domain.errors import FieldError, InvalidInput


class ThemeOut(msgspec.Struct):
    id: str
    label: str
    description: str
    retired: bool


@get("/review/consultations/{slug:str}/themes", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[READERS], summary="The coding frame")
def themes(slug: FromPath[str], services: NamedDependency[Services]) -> list[ThemeOut]:
    frame = services.review.frame(services.consultations.get(slug).id)
    return [ThemeOut(t.id, t.label, t.description, retired) for t, retired in frame.listing()]


@post("/review/consultations/{slug:str}/themes", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Add a theme")
def add_theme(slug: FromPath[str], data: JSONBody[Theme], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.add_theme(slug, data, request.user.id))


@put("/review/consultations/{slug:str}/themes/{theme_id:str}", responses=STAFF_PROBLEMS, sync_to_thread=True, guards=[EDITORS], summary="Revise a theme's label or description")
def revise_theme(slug: FromPath[str], theme_id: FromPath[str], data: JSONBody[Theme], request: Staff, services: NamedDependency[Services]) -> Recorded:
    if data.id != theme_id:
        raise InvalidInput([FieldError("id", "The body's id must be the theme's id in the path.")])
    return Recorded(services.review.revise_theme(slug, data, request.user.id))


@delete("/review/consultations/{slug:str}/themes/{theme_id:str}", responses=STAFF_PROBLEMS, status_code=200, sync_to_thread=True, guards=[EDITORS], summary="Retire a theme: no new tags")
def retire_theme(slug: FromPath[str], theme_id: FromPath[str], request: Staff, services: NamedDependency[Services]) -> Recorded:
    return Recorded(services.review.retire_theme(slug, theme_id, request.user.id))


routes = [themes, add_theme, revise_theme, retire_theme]

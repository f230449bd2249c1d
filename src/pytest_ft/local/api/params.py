"""Request parameters as pydantic models, and the one place their errors become the API's 400.

A client expects the OpenAI API's wording ("Invalid 'temperature': expected a number from 0 to
2.") and its error shape, not pydantic's, so each field says what its 400 says (:class:`Says`)
and :func:`parse` answers with the first invalid field.
"""

import json
from dataclasses import dataclass
from typing import Annotated, Any, Mapping, TypeVar

from fastapi import Request
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ... import data
from ..errors import bad_request

OUT_OF_RANGE = ("greater_than_equal", "less_than_equal")


@dataclass(frozen=True)
class Says:
    """The 400's message when the field it annotates is missing or invalid (``{name}``: the field).

    ``out_of_range``, when given, is the message for a value of the right type but outside its bounds.
    """

    message: str
    out_of_range: str | None = None
    # A structured parameter (``tools``): the 400 names the invalid item's path
    # (``tools[3].function.name``) as its ``param``, and the message may use ``{path}`` and
    # ``{problem}`` (what is wrong there); a missing member is "Missing required parameter".
    nested: bool = False


class Params(BaseModel):
    """A request's parameters, strictly typed: JSON's ``"1"`` or ``true`` is not the number 1."""

    model_config = ConfigDict(strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, values: Any) -> Any:
        # The API reads null as "not given": the default, or "missing" for a required field.
        return {k: v for k, v in values.items() if v is not None} if isinstance(values, Mapping) else values


P = TypeVar("P", bound=Params)


def parse(model: type[P], values: Mapping[str, Any]) -> P:
    """``values`` checked by ``model``; the first invalid field is a 400 naming it."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        says = _says(model, name)
        if says.nested:
            path = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"][1:])
            if error["type"] == "missing":
                raise bad_request(f"Missing required parameter: '{path}'.", param=path) from None
            raise bad_request(says.message.format(name=name, path=path, problem=_problem(error)),
                              param=path) from None
        message = says.out_of_range if says.out_of_range and error["type"] in OUT_OF_RANGE else says.message
        raise bad_request(message.format(name=name), param=name) from None


_EXPECTED = {"list_type": "an array", "dict_type": "an object", "model_type": "an object",
             "model_attributes_type": "an object", "string_type": "a string", "bool_type": "a boolean",
             "int_type": "an integer", "float_type": "a number"}


def _problem(error: Mapping[str, Any]) -> str:
    """What a pydantic error says, in the API's words."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}"
    if kind == "too_long":
        return (f"array too long. Expected an array with maximum length {ctx.get('max_length')}, but got an "
                f"array with length {ctx.get('actual_length')} instead")
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s)"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return str(error["msg"])


def _says(model: type[Params], name: str) -> Says:
    """The :class:`Says` of the field read from the request's parameter ``name``."""
    field = next(f for n, f in model.model_fields.items()
                 if name in (f.validation_alias.choices if isinstance(f.validation_alias, AliasChoices) else [n]))
    return next(m for m in field.metadata if isinstance(m, Says))


def number(lo: float, hi: float) -> Any:
    """A JSON number (integers too) from ``lo`` to ``hi``."""
    return Annotated[float, Field(ge=lo, le=hi),
                     Says(f"Invalid '{{name}}': expected a number from {lo:g} to {hi:g}.")]


def integer(lo: int, hi: int) -> Any:
    """A JSON integer from ``lo`` to ``hi``."""
    return Annotated[int, Field(ge=lo, le=hi), Says(f"Invalid '{{name}}': expected an integer from {lo} to {hi}.")]


def page_size(hi: int) -> Any:
    """A query string's ``limit`` from 1 to ``hi``, its text read as ``int()`` reads it."""
    return Annotated[int, BeforeValidator(int), Field(ge=1, le=hi),
                     Says("Invalid '{name}': expected an integer.",
                          out_of_range=f"Invalid '{{name}}': must be from 1 to {hi}.")]


class Page(Params):
    """A list's query string: the page after the item ``after``, of up to ``limit`` items."""

    after: str | None = None
    limit: page_size(100) = 20


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; a 400 for anything else, or a string that is not text."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise bad_request("We could not parse the JSON body of your request. (HINT: This likely means you "
                          "aren't using your HTTP library correctly.)") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    surrogate = data.lone_surrogate(body)
    if surrogate:
        raise bad_request(f"Invalid JSON body: a string holds U+{ord(surrogate):04X}, half of a surrogate pair "
                          f"and not a character.")
    return body

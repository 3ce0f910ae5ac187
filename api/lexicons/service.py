"""What the lexicon routes do, apart from HTTP; and how jobs, batches and books name them.

:func:`resolve_lexicons` turns the ids a request names into the tenant's
lexicons, refusing an unknown one with the field at fault (``lexicons.1``)
before anything is stored, enqueued or billed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import ValidationError

from api.deps import ApiContext
from api.errors import Conflict, InvalidInput, NotFound
from api.lexicons.schemas import LexiconIn, LexiconLinks, LexiconOut, LexiconSummaryOut, RuleOut
from api.schemas import when
from worker.lexicons.model import (
    InvalidPls,
    InvalidRule,
    Lexicon,
    Rule,
    check_rules,
    new_lexicon_id,
)
from worker.lexicons.pls import PlsDocument, export_pls, parse_pls
from worker.lexicons.store import MAX_LEXICONS_PER_TENANT, LexiconStore

log = logging.getLogger(__name__)


def lexicon_store(ctx: ApiContext) -> LexiconStore:
    """The lexicon store on the app's Redis client (cheap: it holds no connection)."""
    return LexiconStore(ctx.redis, ctx.keys)


def read_pls(data: bytes, case_sensitive: bool, field: str = "pls") -> PlsDocument:
    """``data`` read as PLS, its rules checked; :class:`InvalidInput` naming ``field`` if not."""
    try:
        doc = parse_pls(data, case_sensitive=case_sensitive)
    except InvalidPls as exc:
        message = f"{field}: not a PLS document shoal can read: {exc}"
        raise InvalidInput(message, field=field) from exc
    try:
        check_rules(doc.rules)
    except InvalidRule as exc:
        raise InvalidInput(f"{field}: {exc.message}", field=field) from exc
    return doc


def _rules(body: LexiconIn) -> tuple[str, str, list[Rule]]:
    """The language, alphabet and checked rules ``body`` gives; :class:`InvalidInput` if bad."""
    language, alphabet = "en-US", "ipa"
    if body.pls is not None:
        doc = read_pls(body.pls.encode(), body.case_sensitive)
        rules, language, alphabet = doc.rules, doc.language, doc.alphabet
    else:
        rules = []
        for i, rule in enumerate(body.rules or []):
            try:
                rules.append(Rule(**rule.model_dump()))
            except ValidationError as exc:
                problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise InvalidInput(f"rules.{i}: {problem}", field=f"rules.{i}") from exc
    try:
        check_rules(rules)
    except InvalidRule as exc:
        raise InvalidInput(exc.message, field=exc.field) from exc
    return body.language or language, body.alphabet or alphabet, rules


def _summary_fields(lex: Lexicon) -> dict[str, object]:
    base = f"/v1/lexicons/{lex.id}"
    return {
        "id": lex.id,
        "name": lex.name,
        "version": lex.version,
        "language": lex.language,
        "alphabet": lex.alphabet,
        "rule_count": len(lex.rules),
        "not_applied": lex.not_applied,
        "created_at": when(lex.created_at) or datetime.now(UTC),
        "updated_at": when(lex.updated_at) or datetime.now(UTC),
        "links": LexiconLinks(self=base, export=f"{base}/export"),
    }


def lexicon_summary(lex: Lexicon) -> LexiconSummaryOut:
    """A lexicon as listed: without its rules."""
    return LexiconSummaryOut.model_validate(_summary_fields(lex))


def lexicon_view(lex: Lexicon) -> LexiconOut:
    """A lexicon with its rules."""
    rules = [RuleOut(**r.model_dump()) for r in lex.rules]
    return LexiconOut.model_validate(_summary_fields(lex) | {"rules": rules})


def create_lexicon(ctx: ApiContext, tenant: str, body: LexiconIn) -> Lexicon:
    """Check ``body`` and store it as a new lexicon, version 1."""
    language, alphabet, rules = _rules(body)
    return store_new(ctx, tenant, body.name, language, alphabet, rules)


def store_new(
    ctx: ApiContext, tenant: str, name: str, language: str, alphabet: str, rules: list[Rule]
) -> Lexicon:
    """Store checked rules as a new lexicon, version 1; 409 if the tenant keeps too many."""
    store = lexicon_store(ctx)
    if store.count(tenant) >= MAX_LEXICONS_PER_TENANT:
        raise Conflict(
            f"a tenant may keep {MAX_LEXICONS_PER_TENANT} lexicons; delete one first",
            code="too_many_lexicons",
        )
    lexicon = Lexicon(
        id=new_lexicon_id(),
        tenant=tenant,
        name=name,
        language=language,
        alphabet=alphabet,
        rules=rules,
    )
    return store.create(lexicon)


def owned_lexicon(ctx: ApiContext, tenant: str, lexicon_id: str) -> Lexicon:
    """The tenant's lexicon ``lexicon_id``; 404 if it has none (another's is none too)."""
    lexicon = lexicon_store(ctx).get(tenant, lexicon_id)
    if lexicon is None:
        raise NotFound(f"no lexicon {lexicon_id!r}", field="lexicon_id")
    return lexicon


def replace_lexicon(ctx: ApiContext, tenant: str, lexicon_id: str, body: LexiconIn) -> Lexicon:
    """Replace the lexicon's name and rules; it becomes its next version."""
    language, alphabet, rules = _rules(body)
    updated = lexicon_store(ctx).replace(
        tenant, lexicon_id, name=body.name, language=language, alphabet=alphabet, rules=rules
    )
    if updated is None:
        raise NotFound(f"no lexicon {lexicon_id!r}", field="lexicon_id")
    return updated


def delete_lexicon(ctx: ApiContext, tenant: str, lexicon_id: str) -> None:
    """Delete the lexicon; jobs that used it keep the text it gave them."""
    if not lexicon_store(ctx).delete(tenant, lexicon_id):
        raise NotFound(f"no lexicon {lexicon_id!r}", field="lexicon_id")


def export_lexicon(lex: Lexicon) -> bytes:
    """The lexicon as a PLS 1.0 document."""
    return export_pls(lex.rules, language=lex.language, alphabet=lex.alphabet)


def resolve_lexicons(
    ctx: ApiContext, tenant: str, ids: Sequence[str], field: str = "lexicons"
) -> list[Lexicon]:
    """The tenant's lexicons ``ids``, in order; :class:`InvalidInput` naming an unknown one."""
    found = lexicon_store(ctx).get_many(tenant, ids)
    for i, (lexicon_id, lexicon) in enumerate(zip(ids, found, strict=True)):
        if lexicon is None:
            raise InvalidInput(
                f"{field}.{i}: no lexicon {lexicon_id!r} for this tenant", field=f"{field}.{i}"
            )
        if lexicon_id in ids[:i]:
            raise InvalidInput(f"{field}.{i}: {lexicon_id!r} is named twice", field=f"{field}.{i}")
    return [lex for lex in found if lex is not None]

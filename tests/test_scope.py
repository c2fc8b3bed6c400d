"""Document and question scope: places from the administrative-division data, periods, and
answers that stay with the place and period asked about."""
from __future__ import annotations

import json

import pytest

from qa_app.index.scope import resolve, split_compared, with_explicit_years
from qa_app.ingest.clean import clean_report as clean_text
from qa_app.ingest.loaders import load
from qa_app.ingest.metadata import document_metadata
from qa_app.ingest.scope import infer_scope
from qa_app.models import DocumentInfo, Scope
from qa_app.places import gazetteer
from qa_app.text import plans_in

from .conftest import ROOT, SEEDS

PROVINCES = ROOT.parent / "shared" / "corpora" / "provinces_2026"
needs_provinces = pytest.mark.skipif(
    not (PROVINCES / "manifest.json").is_file(),
    reason=f"the provincial reports are not at {PROVINCES} (CI has ../shared beside the clone; a fresh clone does not)",
)


def doc(doc_id: str, place: str, date: str = "2026-02-01") -> DocumentInfo:
    g = gazetteer()
    p = g.resolve(place)
    return DocumentInfo(doc_id, doc_id, date, scope=Scope(p.code, g.full_name(p), p.level, (2025, 2025), (2026, 2026)))


def test_gazetteer_names_levels_and_parents():
    g = gazetteer()
    haidian = g.resolve("海淀")
    assert (haidian.name, haidian.level, g.full_name(haidian)) == ("海淀区", "district", "北京市海淀区")
    assert g.resolve("广西").name == "广西壮族自治区" and g.resolve("内蒙古").level == "province"
    assert g.resolve("巴音郭楞").name == "巴音郭楞蒙古自治州"
    assert g.full_name(g.resolve("深圳")) == "广东省深圳市"
    assert g.resolve("吉林").level == "province"  # the province before the city of the same name
    assert g.contains(g.resolve("北京"), haidian) and not g.contains(g.resolve("上海"), haidian)
    found = g.find("豫省和皖省2025年")
    assert [places[0].name for _, _, places in found] == ["河南省", "安徽省"]
    # County-level short names only where the caller allows them (和平, 长安 are everyday words).
    assert not g.find("和平发展") and g.find("和平区")


def test_a_provinces_abbreviation_standing_alone_names_it_in_a_question_only():
    g = gazetteer()

    def found(text: str, abbreviations: bool = True) -> list[str]:
        return [p.name for _, _, ps in g.find(text, abbreviations=abbreviations) for p in ps[:1]]

    assert found("皖渝两地进出口分别增长多少") == ["安徽省", "重庆市"]
    assert found("冀今年城镇新增就业目标是多少") == ["河北省"] and found("粤2025年GDP") == ["广东省"]
    assert found("湘省经济") == ["湖南省"]
    # Ordinary characters stay ordinary: 云计算, 新增, 津贴, 鲁迅, 宁可.
    assert found("川渝地区") == ["四川省", "重庆市"] and found("闽的GDP") == ["福建省"]
    assert found("鄂、湘、赣三省2025年GDP分别增长多少？") == ["湖北省", "湖南省", "江西省"]
    assert found("海淀区建设云计算中心多少个") == ["海淀区"]
    # A list whose other items are no abbreviations, or one inside a name, names no place.
    for text in ("新增就业多少", "津贴发放", "鲁迅的故乡在哪", "宁可少而精", "京急逗子线的路线记号是什么？",
                 "在后辽内讧的时候", "达曼港的货物进出口量", "红、黄、蓝、青四种颜色分别代表什么？", "晋、楚两国交战是哪年？",
                 "藏、汉两种语言", "秦地处关中", "京津冀协同发展"):
        assert found(text) == [], text
    # A report's text is not read this way (its every 新 would be Xinjiang).
    assert found("皖渝两地", abbreviations=False) == []


def test_five_year_plans_as_year_spans():
    assert plans_in("“十四五”发展回顾") == {(2021, 2025)}
    assert plans_in("第十三个五年规划纲要") == {(2016, 2020)}
    assert plans_in("十五五时期") == {(2026, 2030)}
    assert not plans_in("十五年来") and not plans_in("三五成群")


def test_seed_documents_get_their_place_period_and_kind():
    manifest = json.loads((SEEDS / "manifest.json").read_text(encoding="utf-8"))
    got = {}
    for name in manifest:
        path = SEEDS / name
        cleaned = clean_text(load(path))
        meta = document_metadata(path, cleaned)
        got[name[:3]] = infer_scope(meta["title"], cleaned, meta)
    assert {s.place for s, _ in got.values()} == {"北京市海淀区"}
    assert got["000"][0].reported == (2023, 2023) and got["000"][0].planned == (2024, 2024)
    assert got["003"][0].planned == (2016, 2020) and got["003"][1] == "plan"
    assert got["001"][0].reported == (2021, 2021) and got["001"][1] == "work_report"  # delivered 2021-12-15


@needs_provinces
def test_every_provincial_report_is_placed_from_its_own_text():
    manifest = json.loads((PROVINCES / "manifest.json").read_text(encoding="utf-8"))
    g = gazetteer()
    for name, entry in manifest.items():
        path = PROVINCES / name
        cleaned = clean_text(load(path))
        meta = {k: v for k, v in document_metadata(path, cleaned).items() if k not in ("region", "place", "kind")}
        scope, kind = infer_scope(meta["title"], cleaned, meta)
        assert scope.place == g.full_name(g.resolve(entry["region"])), name
        assert kind == "work_report" and scope.reported == (2025, 2025) and scope.planned == (2026, 2026), name


def test_question_scope_restricts_refuses_and_resolves_relative_years():
    docs = [doc("anhui.txt", "安徽"), doc("henan.txt", "河南"), doc("haidian.txt", "海淀", "2025-01-20"),
            DocumentInfo("news.txt", "一则新闻")]
    assert resolve("2025年安徽GDP增长多少？", docs).allowed == {"anhui.txt", "news.txt"}
    assert resolve("北京2024年GDP？", docs).allowed == {"haidian.txt", "news.txt"}  # a district inside the city
    assert resolve("合肥2025年新能源汽车产量", docs).allowed == {"anhui.txt", "news.txt"}  # the province's report
    assert resolve("今年的目标是什么", docs).allowed is None
    # "北京朝阳区": the district is what is asked about, and no document covers it.
    assert resolve("2023年北京朝阳区的经济总量涨了多少", docs).named[0].name == "朝阳区"
    only_scoped = docs[:3]
    for question in ("浙江省2026年GDP增长目标是多少？", "深圳2025年GDP", "朝阳区2023年地区生产总值"):
        assert resolve(question, only_scoped).out_of_scope, question
    assert not resolve("海淀区引进了多少家上海企业", only_scoped).out_of_scope
    # English questions name places as English writes them (pinyin, or the English name).
    assert resolve("What was Anhui's GDP growth in 2025?", docs).allowed == {"anhui.txt", "news.txt"}
    assert resolve("What did Haidian plan for 2025?", docs).allowed == {"haidian.txt", "news.txt"}
    for question in ("How much did Shanghai's GDP grow in 2025?", "What is Inner Mongolia's growth target?"):
        assert resolve(question, only_scoped).out_of_scope, question
    names = [p.name for _, _, ps in gazetteer().find("Shaanxi, Shanxi and Tibet") for p in ps[:1]]
    assert names == ["陕西省", "山西省", "西藏自治区"]
    assert not gazetteer().find("What is the plan for the city in this report?")
    anchor = resolve("安徽去年GDP增长多少", only_scoped).anchor_year
    assert with_explicit_years("安徽去年GDP增长多少", anchor) == "安徽2025年GDP增长多少"


def test_compared_places_and_years_become_one_question_each():
    assert split_compared("安徽和河南2025年经济增速分别是多少？", []) == [
        ("安徽", "安徽2025年经济增速是多少？"), ("河南", "河南2025年经济增速是多少？")]
    # Each part asks of one place: "分别" and an adverbial 各 leave it (they kept 经济 and 增长 apart).
    assert split_compared("宁夏和青海2025年经济分别增长了多少？", [])[0] == ("宁夏", "宁夏2025年经济增长了多少？")
    assert split_compared("吉林和辽宁2025年城镇各新增了多少就业？", [])[1] == ("辽宁", "辽宁2025年城镇新增了多少就业？")
    assert [label for label, _ in split_compared("2023年和2024年海淀GDP增速分别是多少？", [])] == ["2023年", "2024年"]
    assert [label for label, _ in split_compared("How many urban jobs did Jiangsu and Shandong each add in 2025?", [])] == [
        "Jiangsu", "Shandong"]
    assert split_compared("海淀上市公司总数2019年底和2021年分别是多少家？", []) == [
        ("2019年底", "海淀上市公司总数2019年底是多少家？"), ("2021年", "海淀上市公司总数2021年是多少家？")]
    # 各 before a verb asks of each; the words before a place may be said again before the next.
    assert [label for label, _ in split_compared("吉林和辽宁2025年城镇各新增了多少就业？", [])] == ["吉林", "辽宁"]
    assert split_compared("2025年去内蒙古和去新疆玩的人各有多少？", []) == [
        ("内蒙古", "2025年去内蒙古玩的人有多少？"), ("新疆", "2025年去新疆玩的人有多少？")]
    # Abbreviations written together, each asked about by its place's name; 各 as a determiner asks nothing.
    assert split_compared("黔滇两省去年经济增速谁更快？", []) == [("黔", "贵州去年经济增速是多少？"), ("滇", "云南去年经济增速是多少？")]
    assert split_compared("北京各区和上海的情况", []) == [("", "北京各区和上海的情况")]
    assert [label for label, _ in split_compared("鄂、湘、赣三省2025年GDP分别增长多少？", [])] == ["鄂", "湘", "赣"]
    # A city and its district written together are one place, not two to compare.
    assert split_compared("北京海淀2024年哪个产业集群入选了国家先进制造业集群？", [doc("hd", "海淀")])[0][0] == ""
    assert [label for label, _ in split_compared("北京海淀区2023年和2024年GDP分别是多少？", [])] == ["2023年", "2024年"]
    assert split_compared("北京市海淀区新增了多少家企业？", [doc("bj", "北京"), doc("hd", "海淀")], True)[0][0] == ""
    # A figure asked of places that each have their own reports is asked of each, even unsaid;
    # not when one report covers both, nor when nothing is counted.
    apart = [doc("hainan", "海南"), doc("xizang", "西藏")]
    assert [label for label, _ in split_compared("海南和西藏今年把经济要涨多少定成目标？", apart, True)] == ["海南", "西藏"]
    assert split_compared("海南和西藏今年把经济要涨多少定成目标？", [doc("hainan", "海南")], True)[0][0] == ""
    assert split_compared("海南和西藏今年把经济要涨多少定成目标？", apart)[0][0] == ""  # not a figure question
    assert split_compared("海南和西藏之间有多少条航线？", apart, True)[0][0] == ""  # one figure for both
    # Which of them is ahead is asked across the parts: each part asks its own figure (a speed is a
    # growth), and words that only count the places ("这两个东北省份") are left out.
    assert split_compared("去年甘肃、宁夏两地的经济谁跑得更快？", []) == [
        ("甘肃", "去年甘肃的经济增长了多少？"), ("宁夏", "去年宁夏的经济增长了多少？")]
    assert split_compared("河南和山东哪个省去年粮食产量更高？", [])[1] == ("山东", "山东去年粮食产量是多少？")
    assert split_compared("安徽和江苏2025年谁的进出口总额更多？", [])[0] == ("安徽", "安徽2025年进出口总额是多少？")
    assert split_compared("2025年山东和山西的PM2.5浓度分别是多少，哪个更低？", [])[0] == ("山东", "2025年山东的PM2.5浓度是多少？")
    assert split_compared("2023年和2024年哪年海淀GDP增长更快？", [])[1] == ("2024年", "2024年海淀GDP增长了多少？")
    assert split_compared("黑龙江、吉林这两个东北省份2025年各打了多少粮？", [])[0] == ("黑龙江", "黑龙江2025年打了多少粮？")
    # Only the ranking is rewritten: not a superlative, not 哪些/哪里, not a word that begins like a count of places.
    assert split_compared("北京和上海各自的地区生产总值是多少?", [])[0] == ("北京", "北京的地区生产总值是多少?")
    assert split_compared("北京和天津二手房市场成交量分别是多少?", [])[1] == ("天津", "天津二手房市场成交量是多少?")
    assert split_compared("北京、上海、广州三地哪个城市GDP最高?", [])[0] == ("北京", "北京哪个城市GDP最高?")
    assert split_compared("北京和上海哪些区的房价更高?", [])[0] == ("北京", "北京哪些区的房价更高?")
    assert split_compared("安徽和河南谁的PM2.5浓度下降得更快?", [])[0] == ("安徽", "安徽PM2.5浓度下降了多少?")
    assert split_compared("2023年和2024年哪年的降水量更少?", [])[0] == ("2023年", "2023年降水量是多少?")
    # Which is ahead, however it is asked: 哪边/哪儿/谁家, a comparative without 更, the asker after
    # the topic, "A跟B比", the words after a place said again after the next, "A…多，还是B…多".
    assert split_compared("重庆和湖南的老百姓，一年人均到手收入哪边多？", []) == [
        ("重庆", "重庆的老百姓，一年人均到手收入是多少？"), ("湖南", "湖南的老百姓，一年人均到手收入是多少？")]
    assert split_compared("黑龙江跟河南比，2025年谁家打的粮食多？", [])[1] == ("河南", "河南2025年打的粮食是多少？")
    assert split_compared("山东、河南去年城里新添的就业岗位谁多？", [])[0] == ("山东", "山东去年城里新添的就业岗位是多少？")
    assert split_compared("西藏、青海两地2025年GDP增速哪个高", [])[1] == ("青海", "青海2025年GDP增速是多少")
    assert split_compared("天津人和重庆人，谁的平均寿命更长？", [])[1] == ("重庆", "重庆人，平均寿命是多少？")
    assert split_compared("西安的机场和重庆的机场，去年哪个客流大？", [])[0] == ("西安", "西安的机场，去年客流是多少？")
    assert split_compared("去年去新疆旅游的人多，还是去内蒙古的多？", []) == [
        ("新疆", "去年去新疆旅游的人是多少？"), ("内蒙古", "去年去内蒙古旅游的人是多少？")]
    assert split_compared("内蒙古与新疆的粮食产量相比，谁更多？", [])[1] == ("新疆", "新疆的粮食产量是多少？")
    assert split_compared("云南和海南，去年哪儿空气好的天数更多？", [])[0] == ("云南", "云南，去年空气好的天数是多少？")
    # Not a comparison with the year before ("比上年"), not a superlative, not an alternative of one place.
    assert split_compared("安徽和河南比上年分别增长多少？", [])[0] == ("安徽", "安徽比上年增长多少？")
    assert split_compared("北京和上海谁的GDP最高？", [])[0] == ("北京", "北京谁的GDP最高？")
    assert split_compared("去新疆旅游还是去海南旅游更便宜？", []) == [("", "去新疆旅游还是去海南旅游更便宜？")]
    assert split_compared("新疆的棉花是机采还是手采？", []) == [("", "新疆的棉花是机采还是手采？")]
    # Places that share one topic are not a comparison.
    assert split_compared("北京、天津、河北三地协同发展的国家战略是哪一年满十年的?", []) == [
        ("", "北京、天津、河北三地协同发展的国家战略是哪一年满十年的?")]


def test_a_ranking_asked_after_the_figures_is_answered_by_them(assistant):
    # "哪年更快？" borrows the first question's topic and would ask the same two parts again.
    question = "2023年和2024年海淀区地区生产总值分别增长了多少？哪年更快？"
    parts = assistant._parts(question, assistant.index.snapshot())
    assert parts == [("2023年", "2023年海淀区地区生产总值增长了多少?"), ("2024年", "2024年海淀区地区生产总值增长了多少?")]
    answer = assistant.ask(question)
    assert answer.text.count("〔2023年〕") == 1 and answer.text.count("〔2024年〕") == 1
    assert "增长6%" in answer.text and "增长6.0%" in answer.text


def test_places_no_report_covers_are_refused_with_what_is_covered(assistant):
    for question in ("朝阳区2023年地区生产总值增速是多少？", "深圳2025年GDP是多少？"):
        a = assistant.ask(question)
        assert a.refused and "北京市海淀区" in a.text, (question, a.text)
    a = assistant.ask("北京2023年地区生产总值增长了多少？")
    assert not a.refused and "6%" in a.text and a.citations[0].place == "北京市海淀区"
    a = assistant.ask("上海和海淀2023年地区生产总值分别增长了多少？")
    first, second = a.text.split("\n")
    assert first.startswith("〔上海〕") and "上海市" in first and second.startswith("〔海淀〕") and "6%" in second


@pytest.fixture(scope="module")
def provinces_assistant(tmp_path_factory):
    from qa_app.answer import Assistant
    from qa_app.config import Settings
    from qa_app.index.store import Index
    from qa_app.ingest.pipeline import ingest

    index = Index(Settings(data_dir=tmp_path_factory.mktemp("provinces")))
    files = [PROVINCES / f"{name}_2026_zhengfu_gongzuo_baogao.txt" for name in ("anhui", "henan", "jilin")]
    report = ingest(files, index, progress=False)
    assert not report.failed, report.failed
    return Assistant(index.settings, index=index)


@needs_provinces
def test_answers_stay_in_the_province_asked_about(provinces_assistant):
    a = provinces_assistant.ask("2025年安徽省粮食产量是多少？")
    assert not a.refused and "838.6亿斤" in a.text
    assert {p.doc.scope.place for p in a.passages} == {"安徽省"}
    a = provinces_assistant.ask("安徽和河南2025年粮食产量分别是多少？")
    assert "〔安徽〕" in a.text and "〔河南〕" in a.text
    places = [c.place for c in a.citations]
    assert "安徽省" in places and "河南省" in places
    a = provinces_assistant.ask("浙江省2026年地区生产总值增长目标是多少？")
    assert a.refused and "浙江省" in a.text and "安徽省" in a.text
    a = provinces_assistant.ask("What was Anhui's GDP growth in 2025?")
    assert not a.refused and {c.place for c in a.citations} == {"安徽省"}


def test_sentence_ranking_finds_a_fact_inside_a_long_chunk(seeds_index):
    from qa_app.config import settings_with
    from qa_app.index.hybrid import HybridSearcher

    index = type(seeds_index)(settings_with(data_dir=str(seeds_index.data_dir), sentence_weight=0.5), seeds_index.embeddings)
    passages = HybridSearcher(index).search("2023年海淀区地区生产总值增长了多少？", 5)
    assert passages and all("sentence" in p.scores for p in passages)
    assert any("地区生产总值预计增长6%" in p.chunk.text for p in passages)
    assert max(p.scores["sentence"] for p in passages) > 0.5  # cosine of the question with its closest sentence


def test_place_names_choose_the_documents_then_leave_the_search():
    docs = [doc("anhui.txt", "安徽"), doc("henan.txt", "河南"), DocumentInfo("news.txt", "一则新闻")]
    only_scoped = docs[:2]
    assert resolve("2025年安徽省GDP增长多少？", only_scoped).framing == ("安徽省",)
    # A document of no known place may need the name to be found: it stays a search term.
    assert resolve("2025年安徽省GDP增长多少？", docs).framing == ()
    assert resolve("2025年GDP增长多少？", only_scoped).framing == ()
    # A place no report covers is what the question is about, not where: it stays.
    assert resolve("安徽省引进了多少家上海企业？", only_scoped).framing == ("安徽省",)
    from qa_app.index.query import Query

    query = Query.parse("2025年安徽省GDP增长多少？")
    kept = query.bm25_tokens(("安徽省",))
    assert "安徽省" in query.bm25_tokens() and not any("安徽" in t for t in kept) and "gdp" in kept
    assert Query.parse("安徽省").bm25_tokens(("安徽省",)) == Query.parse("安徽省").bm25_tokens()  # nothing else left
    # QA_PLACE_WORDS=all: the question's vector is made from what is left.
    assert "安徽" not in query.without(("安徽省",)).norm and query.without(("安徽省",)).years == [2025]
    assert Query.parse("安徽省").without(("安徽省",)).norm == "安徽省"


@needs_provinces
def test_a_place_name_no_longer_pulls_up_the_chunks_that_repeat_it(provinces_assistant):
    from qa_app.index.hybrid import HybridSearcher
    from qa_app.index.query import Query

    index = provinces_assistant.index
    snap = index.snapshot()
    question = "安徽今年（2026年）城镇要新增多少人就业？"
    scope = resolve(question, list(snap.docs.values()))
    assert scope.framing == ("安徽",)
    mask = snap.allowed_mask(HybridSearcher(index).allowed(Query.parse(question), snap, scope=scope))
    query = Query.parse(question)

    def rank(tokens):
        hits = snap.bm25.search(tokens, 40, mask)
        return next(i for i, (cid, _) in enumerate(hits, 1) if "城镇新增就业68万人左右" in snap.chunks[cid].norm)

    assert rank(query.bm25_tokens(scope.framing)) < rank(query.bm25_tokens())
    passages = provinces_assistant.ask(question).passages
    assert any("城镇新增就业68万人左右" in p.chunk.norm for p in passages[:3])

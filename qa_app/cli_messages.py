"""The command line's one message style: Chinese first, English in brackets, behind a bilingual
label (``错误 error:``, ``注意 warning:``), for the CLI's own messages and for click's usage
errors alike (a wrong option is said in both languages, with where to read the usage).

The library's messages (a bad question, an empty index, a read-only folder) are already written
this way and are shown as they are, behind the same label.
"""
from __future__ import annotations

import sys

import typer

from qa_app.text import bilingual  # noqa: F401  (the CLI's messages are made with it)

# Click's exception classes, wherever this typer keeps them (its own copy of click since 0.26,
# click itself before): the module of the public typer.BadParameter holds them all.
errors = sys.modules[typer.BadParameter.__module__]

ERROR_LABEL = "错误 error: "
WARNING_LABEL = "注意 warning: "



def error_line(message: str) -> str:
    return ERROR_LABEL + message


def warning_line(message: str) -> str:
    return WARNING_LABEL + message


def usage_error(exc) -> str:
    """A usage error (unknown option, bad value, missing argument) in the CLI's style, with the
    command's help to look at."""
    english = exc.format_message().strip()
    ctx = exc.ctx
    text = error_line(bilingual(_chinese(exc) + "。", english))
    if ctx is not None:
        text += "\n" + bilingual(f"用法见 `{ctx.command_path} --help`。", f"See `{ctx.command_path} --help` for usage.")
    return text


def _param_name(exc) -> str:
    param = getattr(exc, "param", None)
    if param is None:
        return str(getattr(exc, "param_hint", "") or "")
    if getattr(param, "param_type_name", "") == "option":
        return " / ".join(param.opts)
    return str(param.name or "").upper()


def _chinese(exc) -> str:
    if isinstance(exc, errors.NoSuchOption):
        hint = f"，是否指 {', '.join(sorted(exc.possibilities))}" if exc.possibilities else ""
        return f"没有这个选项：{exc.option_name}{hint}"
    if isinstance(exc, errors.MissingParameter):
        return f"缺少必需的参数：{_param_name(exc)}" if _param_name(exc) else "缺少必需的参数"
    if isinstance(exc, errors.BadParameter):
        return f"参数值无效：{_param_name(exc)}" if _param_name(exc) else "参数值无效"
    if isinstance(exc, errors.BadOptionUsage):
        return f"选项用法有误：{exc.option_name}"
    if isinstance(exc, errors.BadArgumentUsage):
        return "参数用法有误"
    english = exc.message
    if english.startswith("No such command"):
        return "没有这个命令：" + english.removeprefix("No such command").strip(" .'\"")
    if "unexpected extra argument" in english:
        return "多余的参数"
    return "命令用法有误"

"""The commands that reproduce and re-record a case target (the nox naming contract)."""

from __future__ import annotations


def repro_command(case: str, platform: str) -> str:
    """The nox session that runs exactly this case on this platform."""
    return f'nox -s "logitsmatch-{case}@{platform}"'


def record_command(case: str, platform: str) -> str:
    """The nox session that re-records this case's golden for this platform."""
    return f"nox -s record -- {case} --platform {platform}"


def command_footer(case: str, platform: str) -> str:
    """The two lines every failure message ends with."""
    return (
        f"reproduce: {repro_command(case, platform)}\nre-record: {record_command(case, platform)}"
    )

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Two commands")[1].split("\n## ")[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme__has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    main, tests = commands
    assert "python -m experiments." in main and "--preset default" in main
    assert "pytest" in tests
    assert all(c.startswith("pip install -q torch==2.13.0 -e ") for c in commands)


def test_ci__runs_the_readme_test_command_verbatim():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines

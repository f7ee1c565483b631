"""The departments file: who can be given tasks, and their names for people to read."""

from __future__ import annotations

from pathlib import Path

import yaml

from schemas import DepartmentRegistry

__all__ = ["DEPARTMENTS", "load_departments"]

DEPARTMENTS = Path(__file__).parent / "departments.yaml"


def load_departments(path: Path | str = DEPARTMENTS) -> DepartmentRegistry:
    """Read and validate a departments YAML file."""
    with open(path, encoding="utf-8") as fh:
        return DepartmentRegistry.model_validate(yaml.safe_load(fh))

"""Type stubs of the native module `lineage._lineage` (python/src/lib.rs)."""

from typing import Any, Callable, List, Optional, Tuple

__version__: str

class LineageError(Exception):
    """Base of every error Lineage raises."""

class ScenarioError(LineageError):
    """An invalid scenario, located."""

    file: str
    line: int
    column: int
    field: str
    message: str

class PluginError(LineageError): ...
class DataError(LineageError): ...
class RunError(LineageError): ...
class InternalError(LineageError): ...

Progress = Optional[Callable[[int, int, float], Any]]

def validate(
    path: Optional[str],
    text: Optional[str],
    name: str,
    dir: str,
    seed: Optional[int] = None,
    generations: Optional[int] = None,
    device: Optional[str] = None,
    memory_limit: Optional[int] = None,
) -> str: ...
def run(
    path: Optional[str],
    text: Optional[str],
    name: str,
    dir: str,
    out: Optional[str] = None,
    threads: int = 0,
    progress: Progress = None,
    seed: Optional[int] = None,
    generations: Optional[int] = None,
    device: Optional[str] = None,
    memory_limit: Optional[int] = None,
) -> str: ...
def resume(
    run_dir: str,
    generations: Optional[int] = None,
    threads: int = 0,
    progress: Progress = None,
) -> str: ...
def write_report(
    run_dir: str, baseline: Optional[str] = None, learned: Optional[str] = None
) -> List[str]: ...
def summary(run_dir: str) -> str: ...
def toml_to_json(text: str) -> str: ...
def weights(
    run_dir: str, id: int, which: str
) -> Tuple[List[Tuple[str, List[int], bytes]], List[Tuple[str, List[int], bytes]]]: ...
def genomes(run_dir: str, generation: int) -> Tuple[List[Tuple[str, List[int], bytes]], int, int]: ...
def json_to_toml(text: str) -> str: ...
def serve_plugin_worker() -> int: ...

"""Where each stage's outputs live under the project root."""
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path

    def raw(self, competition):
        """Downloads (or the built-in sample), never modified after they land."""
        return self.root / "data" / "raw" / competition.slug

    def interim(self, competition):
        """Parsed and validated arrays (clean)."""
        return self.root / "data" / "interim" / competition.slug

    def processed(self, competition):
        """Scaled arrays and the fitted scaler (scale)."""
        return self.root / "data" / "processed" / competition.slug

    def runs(self, competition):
        """One folder per training run: model, history, metrics, predictions."""
        return self.root / "data" / "runs" / competition.slug

    def reports(self, competition, run):
        """`run.py report`: index.html and its plots."""
        return self.root / "reports" / competition.slug / run

    def exports(self, competition, run):
        """`run.py export`: the run's model for serving."""
        return self.root / "exports" / competition.slug / run

    @property
    def submissions(self):
        return self.root / "submissions"

    @property
    def locks(self):
        return self.root / "data" / ".locks"

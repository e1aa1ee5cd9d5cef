"""Corpus builders and online fetchers for the style corpora.

Offline builders (``python -m datasets build STYLE``) make MIDI corpora for the
shipped styles (piano, drums, rock, electronic, jazz, latin, funk, blues,
country) from packages on the Debian and
PyPI registries; online fetchers (``python -m datasets fetch NAME``) download
public datasets (MAESTRO, Groove MIDI, Lakh MIDI) for users with internet. Both
write the same ``manifest.json`` (format ``perfrnn-corpus/1``) that
``python -m training prepare`` reads. Importing this package has no side
effects; the work happens in its modules.
"""

from datasets.errors import DatasetError
from datasets.manifest import MANIFEST_FORMAT, read_manifest

__all__ = ["MANIFEST_FORMAT", "DatasetError", "read_manifest"]

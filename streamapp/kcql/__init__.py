"""KCQL: parse ``connect.coap.kcql`` into frozen :class:`Statement` objects (``parser.py``, ``model.py``), and
compile a statement's projection, renames, IGNORE and templates into functions (``selector.py``)."""

from streamapp.kcql.model import Field, Statement
from streamapp.kcql.parser import parse_kcql, split_statements

__all__ = ["Field", "Statement", "parse_kcql", "split_statements"]

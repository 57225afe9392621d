"""KCQL: parse ``connect.coap.kcql`` into frozen :class:`Statement` objects."""

from streamapp.kcql.model import Field, Statement
from streamapp.kcql.parser import parse_kcql, split_statements

__all__ = ["Field", "Statement", "parse_kcql", "split_statements"]

"""Querysets compiled to SQL once per process: the hot reads of a socket's handshake skip Django's SQL compiler.

Building and compiling a queryset costs 0.1 to 0.6 ms of a core; running its
SQL on a warm database, a tenth of that. A page load ran six such reads, and
in a ramp of handshakes the sockets' database thread was two fifths of a
process that the GIL keeps to one core (bench/, py-spy).

A Prepared compiles its queryset once per database alias and shape, with a
marker in the place of each value that changes from call to call; a call
puts the values in the markers' places among the SQL's parameters and runs
the same SQL through the queryset's own iterable (model instances,
select_related, annotations, values_list and converters as Django gives them).
"""
import copy

from django.db import DEFAULT_DB_ALIAS, connections

# Markers for the usual kinds of value. A marker only has to differ from the query's constant parameters, and be a
# value that Django puts in the SQL: it drops `cseq > -2` on a positive field (always true), so a number is in
# the range of every integer field.
ID = -1
NUMBER = 2_147_483_001
TEXT = "\0"


class Prepared:
    """A queryset whose SQL is compiled once, run again with other values in its marked parameters.

    `build(**kwargs)` returns the queryset. The keyword arguments named in
    `markers` are the values: build is called with each one's marker, a value
    that must appear exactly once among the compiled SQL's parameters. Any other
    keyword argument is part of the shape (a LIMIT, say): each shape is compiled
    once. build must not read anything that changes between calls (the clock:
    use Now() in the SQL).
    """

    def __init__(self, build, **markers):
        self.build, self.markers = build, markers
        self.compiled = {}  # (alias, shape) -> (queryset, compiler, sql, params, marker positions)

    def __call__(self, *, using=DEFAULT_DB_ALIAS, **kwargs):
        """Return the results (a list) of the queryset for `kwargs`, from the SQL compiled for their shape."""
        values = {name: kwargs.pop(name) for name in self.markers}
        key = (using, tuple(sorted(kwargs.items())))
        if key not in self.compiled:
            self.compiled[key] = self._compile(using, kwargs)
        queryset, compiler, sql, params, positions = self.compiled[key]
        params = list(params)
        for name, position in positions.items():
            # In the marker's own wrapper: Django passes a big integer to psycopg as Int8, say.
            value = values[name]
            params[position] = value if value is None else type(params[position])(value)
        return list(_running(queryset, compiler, sql, tuple(params)))

    def _compile(self, using, shape):
        queryset = self.build(**self.markers, **shape).using(using)
        compiler = queryset.query.get_compiler(using=using)
        # Also sets what the iterables read from the compiler: the columns, the models, the annotations.
        sql, params = compiler.as_sql()
        positions = {}
        for name, marker in self.markers.items():
            found = [n for n, param in enumerate(params)
                     if isinstance(param, type(marker)) and not isinstance(param, bool) and param == marker]
            if len(found) != 1:
                raise ValueError(f"the marker of {name!r} is {len(found)} times among the parameters of: {sql}")
            positions[name] = found[0]
        return queryset, compiler, sql, params, positions


def _running(queryset, compiler, sql, params):
    """Return a copy of `queryset` whose compiler is a copy of `compiler` that runs `sql` with `params`."""
    # Evaluated at once by the caller: a queryset derived from this one would run the same SQL whatever it adds.
    queryset = queryset._chain()
    # The alias, not the queryset: a closure over the queryset its query holds would be a cycle left to the
    # garbage collector, 3 KiB for each socket in a ramp of 1,000 (bench/).
    alias = queryset.db

    def get_compiler(using=None, connection=None, elide_empty=True):
        running = copy.copy(compiler)
        # The connection of the thread that runs it, not of the one that compiled it.
        running.connection = connections[alias]
        running.as_sql = lambda *args, **kwargs: (sql, params)
        return running

    queryset.query.get_compiler = get_compiler
    return queryset

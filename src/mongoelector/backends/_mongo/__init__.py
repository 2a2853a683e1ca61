"""The parts of the MongoDB backends that do no I/O.

Both the sync :class:`~mongoelector.backends.mongo.MongoBackend` and an async
backend build their commands, read their replies, judge their failures and
estimate server time with these modules, so the logic exists once:

* :mod:`.documents`: the lease and member document layouts (1.x compatible).
* :mod:`.commands`: the filters, updates and pipelines sent, and how replies
  are read.
* :mod:`.failures`: which pymongo errors mean "not applied" and which "maybe
  applied", which are worth retrying, and the retry budget.
* :mod:`.server_clock`: server time estimated from ``hello`` round trips.
* :mod:`.indexes`: the indexes to create, and how a refusal is reported.
* :mod:`.seen`: what a backend has seen of each key (least token, last holder).
* :mod:`.validation`: checks of the database, collection names and metadata.
"""

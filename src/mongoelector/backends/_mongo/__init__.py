"""The parts of the MongoDB backends that do no I/O.

Both :class:`~mongoelector.backends.mongo.MongoBackend` (sync) and
:class:`~mongoelector.backends.async_mongo.AsyncMongoBackend` run their
operations as plans built by these modules, so the logic exists once; each
backend's shell only performs the I/O steps the plans yield:

* :mod:`.plans`: the I/O steps, and the plans every operation builds on
  (retries within a time budget, ``hello``, index creation).
* :mod:`.operations`: the storage protocol as plans (write path, acquire,
  renew, release, reads, member status).
* :mod:`.surface`: the constructor's checks and the properties both backends share.
* :mod:`.documents`: the lease and member document layouts (1.x compatible).
* :mod:`.commands`: the filters, updates and pipelines sent, and how replies
  are read.
* :mod:`.failures`: which pymongo errors mean "not applied" and which "maybe
  applied", which are worth retrying, and the retry budget.
* :mod:`.server_clock`: server time estimated from ``hello`` round trips;
  :mod:`.clock_reader`: when to take those round trips.
* :mod:`.indexes`: the indexes to create, and how a refusal is reported.
* :mod:`.seen`: what a backend has seen of each key (least token, last holder).
* :mod:`.validation`: checks of the database, collection names and metadata.
"""

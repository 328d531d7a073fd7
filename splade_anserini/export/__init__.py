"""Export a vectors folder into engines that scale past one machine.

* :mod:`.milvus`: a Milvus collection (Milvus Lite file or cluster), searched with ``search --backend milvus``;
* :mod:`.opensearch`: OpenSearch ``rank_features`` / Elasticsearch ``sparse_vector`` mapping, bulk
  NDJSON files and a query template;
* :mod:`.ciff`: the Common Index File Format read by PISA, BMP, Seismic and ciff-toolkit.

Every exporter reads the collection through :mod:`splade_anserini.conversion.jsonvector` (the one
validator the indexes use) and carries the vectors' provenance (model, factor) along.
"""

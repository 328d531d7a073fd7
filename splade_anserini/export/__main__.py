"""``splade-anserini export``: a vectors folder into Milvus, OpenSearch/Elasticsearch files or CIFF.

    splade-anserini export --to milvus --input vectors/ --uri scifact.db --collection scifact
    splade-anserini export --to opensearch --input vectors/ --output os-scifact/ [--chunk-size 5000]
    splade-anserini export --to elasticsearch --input vectors/ --output es-scifact/
    splade-anserini export --to ciff --input vectors/ --output scifact.ciff [--max-impact 63]

``--input`` is a vectors folder (or file) as ``index --input`` takes. Milvus: ``--uri`` is a Milvus
Lite file (``.db``) or a server address; an interrupted export continues when run again. The others
write files, complete or not at all.
"""
from __future__ import annotations

import sys

from splade_anserini.cli import ArgumentParser, command, positive_int

TARGETS = ("milvus", "opensearch", "elasticsearch", "ciff")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(description="Export SPLADE vectors to Milvus, OpenSearch/Elasticsearch files or CIFF.")
    parser.add_argument("--to", required=True, choices=TARGETS)
    parser.add_argument("--input", required=True, help="JsonVectorCollection directory (or file), as index --input")
    parser.add_argument("--uri", help="milvus: a Milvus Lite file (.db) or a server address (http://HOST:19530)")
    parser.add_argument("--collection", help="milvus: the collection to create (or resume)")
    parser.add_argument("--model", default=None,
                        help="milvus: the model whose vocabulary ids are the dimensions (default: the vectors' model)")
    parser.add_argument("--batch-size", type=positive_int, default=1000, help="milvus: documents per insert")
    parser.add_argument("--output", help="opensearch/elasticsearch: a folder to create; ciff: a file (.ciff or .ciff.gz)")
    parser.add_argument("--index-name", default="splade", help="opensearch/elasticsearch: the index the bulk files fill")
    parser.add_argument("--chunk-size", type=positive_int, default=5000,
                        help="opensearch/elasticsearch: documents per bulk file")
    parser.add_argument("--max-impact", type=positive_int, default=None,
                        help="ciff: rescale the impacts so that none exceeds this (63 for BMP, which stores 8-bit impacts "
                             "and adds scores up in 16 bits; default: unchanged)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier export of this tool (never anything else)")
    return parser


def check_options(parser: ArgumentParser, args) -> None:
    milvus = args.to == "milvus"
    if milvus and not (args.uri and args.collection):
        parser.error("--to milvus needs --uri and --collection")
    if not milvus and (args.uri or args.collection or args.model):
        parser.error(f"--uri, --collection and --model are for --to milvus, not --to {args.to}")
    if not milvus and not args.output:
        parser.error(f"--to {args.to} needs --output")
    if args.max_impact is not None and args.to != "ciff":
        parser.error(f"--max-impact is for --to ciff, not --to {args.to}")
    if milvus and args.output:
        parser.error("--to milvus writes into --uri/--collection, not --output")


@command
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_options(parser, args)
    if args.to == "milvus":
        from splade_anserini.export.milvus import export_milvus

        print(export_milvus(args.input, args.uri, args.collection, model=args.model, batch_size=args.batch_size,
                            overwrite=args.overwrite).summary())
    elif args.to == "ciff":
        from splade_anserini.export.ciff import export_ciff

        from splade_anserini.export.ciff import BMP_SAFE_IMPACT

        info = export_ciff(args.input, args.output, max_impact=args.max_impact)
        print(f"ciff {info['output']}: {info['documents']:,} documents, {info['terms']:,} terms, {info['postings']:,} "
              f"postings in {info['seconds']:.1f} s")
        if info["scale"] != 1.0:
            print(f"note: impacts rescaled by {info['scale']:.6g}: the largest is now {info['max_impact']}")
        elif info["max_impact"] > BMP_SAFE_IMPACT:
            print(f"note: impacts reach {info['max_impact']}; for BMP (8-bit impacts, 16-bit scores) export with "
                  f"--max-impact {BMP_SAFE_IMPACT}")
    else:
        from splade_anserini.export.opensearch import export_search_engine

        info = export_search_engine(args.input, args.output, args.to, index_name=args.index_name,
                                    chunk_size=args.chunk_size, overwrite=args.overwrite)
        print(f"{args.to} files in {args.output}: mapping.json, {info['bulk_files']} bulk files "
              f"({info['documents']:,} documents), query-template.json\nnote: {info['precision']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

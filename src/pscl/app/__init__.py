"""`pscl app`: a local web page over a folder of micrographs, to stroke classes, train, see every
segmentation, correct it and export the report. Needs the ``app`` extra (Starlette, uvicorn)."""

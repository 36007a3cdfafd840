/* The meta-learned model, embedded as it is on disk: anole_blob_parse reads it in place from
 * flash. MODEL_PATH is the blob's path (the Makefile passes models/sine/init.postcard). */
    .section .rodata.anole_model, "a"
    .global anole_model
    .global anole_model_end
    .balign 4
anole_model:
    .incbin MODEL_PATH
anole_model_end:

"""anole fleet: federated Reptile on Flower.

A server (a Flower ``ServerApp``) holds the fleet's initialization as an anole blob. Every round
it signs the blob with the fleet key and sends it to a sample of devices (Flower ``ClientApp``s);
each verifies the signature, adapts the blob on its own data with the blob's adaptation
procedure through ``anole.Learner`` (the device's own engine), and sends back only the f16 delta
of its adapting layers. The server validates every delta, aggregates the accepted ones (mean,
coordinate-wise median or trimmed mean) and takes the Reptile step
``phi <- phi + eps * aggregate(delta)`` with ``eps`` annealed, then writes the new blob, its ONNX
and a card with the round history. Data never leaves a device.
"""

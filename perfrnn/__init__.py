"""perfrnn: Magenta's Performance RNN rebuilt on TensorFlow 2.

The core library of the project: event encoding, the LSTM model, the compiled
sampler, `.mag` bundle I/O and the DAW-ready MIDI writer. It imports neither
Flask nor boto3.
"""

from perfrnn.errors import PerfRNNError

__all__ = ["PerfRNNError"]

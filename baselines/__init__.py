"""Baselines trained on the same task as the rate and spiking networks: a GRU, FORCE-trained
echo-state networks (rate, Sussillo & Abbott 2009; spiking, Nicola & Clopath 2017) and LFADS fitted
to the spikes. The GRU family (vanilla, GRU, LSTM, UGRNN) is in ``rnns``."""

from .rnns import ARCHITECTURES, BaselineRNN, BaselineRNNConfig

__all__ = ["ARCHITECTURES", "BaselineRNN", "BaselineRNNConfig"]

"""Baselines trained on the same task as the rate and spiking networks: a GRU, FORCE-trained
echo-state networks (rate, Sussillo & Abbott 2009; spiking, Nicola & Clopath 2017) and LFADS fitted
to the spikes. (Their stage comes in a later issue; nothing lives here yet.)"""

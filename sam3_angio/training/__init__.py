"""sam3_angio.training"""

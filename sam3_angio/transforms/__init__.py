"""sam3_angio.transforms"""

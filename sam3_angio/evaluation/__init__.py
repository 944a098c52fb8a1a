"""sam3_angio.evaluation"""

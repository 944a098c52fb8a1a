"""sam3_angio.model"""

"""sam3_angio.data"""

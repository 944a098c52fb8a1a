"""sam3_angio.losses"""

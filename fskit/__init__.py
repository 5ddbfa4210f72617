"""fskit"""

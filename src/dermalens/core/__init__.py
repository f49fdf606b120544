"""The bottom layer: decoding, preprocessing, patient metadata and the taxonomy. Every other
package may import it; it imports nothing of dermalens."""

"""rosbag2 logs: reading and writing them (serialisation, QoS, sensor topics), recovering a cut one, recording live
topics into one and playing one back."""

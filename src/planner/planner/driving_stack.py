"""The whole model as one module: perception encoders + planner, for training.

``DrivingStack`` holds the perception encoders and the driving model, so DDP and the optimiser see one set of
weights, the same weights the nodes load from the checkpoint. Its tokens come from the same
``SensorEncoders.fuse`` as the live perception output, and reach the planner through the same
:func:`planner.model.pack_tokens`.
"""

from torch import nn

from perception_llm.fusion import SensorEncoders
from planner.model import DrivingModel, ModelOutput


class DrivingStack(nn.Module):
    def __init__(self, encoders: SensorEncoders, model: DrivingModel):
        super().__init__()
        self.encoders, self.model = encoders, model

    def forward(self, batch: dict) -> ModelOutput:
        fused = self.encoders.fuse(batch['images'], batch['camera_present'], batch['bev'], batch['lidar_present'],
                                   batch['ego'], batch['ego_present'], batch['camera_anchors'])
        out = self.model(fused.embedding, fused.anchors, fused.mask, batch['route'], fused.modality)
        out.extras['lane_pose'] = self.encoders.lane_pose(fused)
        return out

from setuptools import find_packages, setup

package_name = 'perception_llm'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={package_name: ['schema/*.schema.json']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='avstack maintainers',
    maintainer_email='maintainers@avstack.dev',
    description=('Perception front end of the driving model: decodes and time-syncs camera, lidar and odometry,'
                 ' encodes them into fused tokens.'),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'perception_node = perception_llm.perception_node:main',
        ],
    },
)

from setuptools import find_packages, setup

package_name = 'sim_bridge'

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
    description='highway-env bridged onto the stack topics, with a pure pursuit + PID controller and a safety driver.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bridge_node = sim_bridge.bridge_node:main',
        ],
    },
)
